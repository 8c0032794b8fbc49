#!/bin/sh
# tools/deps.sh: make sure the build and test tools are here. As root it
# installs what is missing with apt-get; otherwise it prints the command.
# LuaJIT's headers: Debian's libluajit-5.1-dev, or OpenResty's
# libluajit2-5.1-dev when it (or its runtime, which nginx's Lua module
# needs) is installed: installing the other one would make apt remove it.
# pkg-config luajit finds either.
LUAJIT_DEV=libluajit-5.1-dev
if command -v dpkg-query >/dev/null 2>&1 &&
   dpkg-query -W -f='${Status}' libluajit2-5.1-2 libluajit2-5.1-dev \
     2>/dev/null | grep -q "install ok installed"; then
  LUAJIT_DEV=libluajit2-5.1-dev
fi
PKGS="gcc make pkg-config libuv1-dev $LUAJIT_DEV libssl-dev perl"
missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v prove >/dev/null 2>&1 || missing="$missing perl"
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists libuv || missing="$missing libuv1-dev"
  pkg-config --exists luajit || missing="$missing $LUAJIT_DEV"
  pkg-config --exists openssl || missing="$missing libssl-dev"
else
  missing="$missing libuv1-dev $LUAJIT_DEV libssl-dev"
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
[ "$LUAJIT_DEV" = libluajit-5.1-dev ] &&
  echo "coronet: (OpenResty's libluajit2-5.1-dev works in place of libluajit-5.1-dev)" >&2
exit 1
