#!/bin/sh
# tools/deps.sh: make sure the build and test tools are here. As root it
# installs what is missing with apt-get; otherwise it prints the command.
PKGS="gcc make pkg-config libuv1-dev libluajit-5.1-dev libssl-dev perl"
missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v prove >/dev/null 2>&1 || missing="$missing perl"
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists libuv || missing="$missing libuv1-dev"
  pkg-config --exists luajit || missing="$missing libluajit-5.1-dev"
  pkg-config --exists openssl || missing="$missing libssl-dev"
else
  missing="$missing libuv1-dev libluajit-5.1-dev libssl-dev"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "coronet: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y $missing >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y $missing; } ||
    { echo "coronet: apt-get install$missing failed" >&2; exit 1; }
  exit 0
fi
echo "coronet: missing build dependencies:$missing" >&2
echo "coronet: install them with: sudo apt-get install -y $PKGS" >&2
echo "coronet: (OpenResty's libluajit2-5.1-dev works in place of libluajit-5.1-dev)" >&2
exit 1
