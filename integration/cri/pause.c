/*
 * The pod sandbox's process for integration/cri, doing what Kubernetes' pause container does
 * (written for these checks): it holds the pod's namespaces, reaps the orphans that a shared
 * pid namespace hands to its pid 1, and ends with status 0 on SIGTERM or SIGINT. Built
 * static by run.sh into the pause image, whose only file it is.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig)
{
    (void)sig;
    _exit(0);
}

static void reap(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void)
{
    struct sigaction on_quit = { .sa_handler = quit };
    struct sigaction on_child = { .sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART };

    if (sigaction(SIGTERM, &on_quit, NULL) || sigaction(SIGINT, &on_quit, NULL) ||
        sigaction(SIGCHLD, &on_child, NULL)) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
