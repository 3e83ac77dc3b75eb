#!/usr/bin/env bash
# multihost.sh - the suite's entry for the multi-host test (issue 10):
# sharing across two network namespaces over sshd/sshfs and Syncthing.
# The driver and its README are in tests/multihost/; this wrapper exists so
# that tests/run-tests.sh (which runs tests/*.sh) picks it up.
exec bash "$(dirname "$0")/multihost/multihost.sh" "$@"
