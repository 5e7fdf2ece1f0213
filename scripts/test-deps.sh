#!/usr/bin/env bash
# Installs the system packages the test suite needs, when missing: iproute2 (network namespaces and
# tc for the network-emulation tests), nftables (partitions in the fault tests; nsenter of util-linux
# enters the tests' namespaces), Chromium (the HTML report is checked in a headless browser), and
# OpenSSH's server and client with sudo (the SSH provider is tested against real sshd, as root and as
# a user that goes through sudo), and `script` (bsdutils: the CLI's output on a terminal).
# The emulated cloud of the AWS tests boots each instance with this machine's curl, wget and openssl,
# in namespaces of its own (unshare, from util-linux; as root).
# moto_server (S3 with conditional writes, and the AWS control plane) comes from Python's registry.
set -euo pipefail
if ! command -v moto_server >/dev/null 2>&1; then
  echo "Installing moto_server (pip install 'moto[server]')…"
  if ! { command -v pip3 >/dev/null 2>&1 && pip3 install -q 'moto[server]'; } || ! command -v moto_server >/dev/null 2>&1; then
    echo "moto_server is missing and could not be installed: install Python 3.9+ and run \`pip install 'moto[server]'\`, then run this again" >&2
    exit 1
  fi
fi
missing=()
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing+=(iproute2)
{ command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; } || missing+=(nftables)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v sudo >/dev/null 2>&1 || missing+=(sudo)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v wget >/dev/null 2>&1 || missing+=(wget)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
{ command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1; } || missing+=(util-linux)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing ${missing[*]} (apt-get)…"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
