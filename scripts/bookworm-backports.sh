#!/usr/bin/env bash
# Adds Debian's bookworm-backports to apt's sources when they lack it, for the two packages hull's
# checks take from there on Debian 12: QEMU 10 for the test machine (integration/testvm) and Go
# 1.23 for the OCI validation programs (integration/oci-validation). A fresh Debian 12 machine
# has no backports source. Prints "added" when it added one (the caller then runs apt-get update);
# does nothing on another release or when a source already names bookworm-backports. Root.
set -euo pipefail
grep -qs '^VERSION_CODENAME=bookworm$' /etc/os-release || exit 0
grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && exit 0
printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
    > /etc/apt/sources.list.d/hull-bookworm-backports.sources
echo added
