#!/usr/bin/env bash
# Bench-only set-up, idempotent and fast when done (scripts/setup.sh does the project's own):
#  - Postfix's smtp-sink, from Debian's postfix package unpacked into .tools/ (apt-get download
#    + dpkg -x: nothing is installed, no daemon runs), with any shared library it lacks fetched
#    the same way; .tools/bin/smtp-sink is a wrapper that points the loader at them;
#  - bench/requirements.txt (py-spy, for `python -m bench.profile`) into .venv;
#  - with --peers, the Node peer (bullmq + nodemailer, pinned by bench/peers/package-lock.json)
#    into bench/.peers/.
set -euo pipefail
cd "$(dirname "$0")/.."

want_peers=""
for arg in "$@"; do [ "$arg" = "--peers" ] && want_peers=1; done

TOOLS=.tools
ROOT=$TOOLS/postfix
DEBS=$TOOLS/debs
WRAPPER=$TOOLS/bin/smtp-sink
ARCH_LIB=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
LIB_PATH="$PWD/$ROOT/usr/lib/postfix:$PWD/$ROOT/usr/lib/$ARCH_LIB:$PWD/$ROOT/lib/$ARCH_LIB"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""

# apt-get download PACKAGE... into $DEBS; refresh the package lists once if it fails.
fetch_debs() {
  mkdir -p "$DEBS"
  chmod 777 "$DEBS"  # apt's sandbox user (_apt) writes the download here
  if ! (cd "$DEBS" && apt-get download -qq "$@" >/dev/null 2>&1); then
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    (cd "$DEBS" && apt-get download -qq "$@" >/dev/null)
  fi
}

missing_libs() {
  LD_LIBRARY_PATH="$LIB_PATH" ldd "$ROOT/usr/sbin/smtp-sink" | awk '/not found/ {print $1}'
}

# Debian library packages postfix depends on that this machine does not have installed.
absent_lib_packages() {
  dpkg-deb -f "$DEBS"/postfix_*.deb Depends | tr ',|' '\n\n' | sed 's/(.*)//; s/ //g' |
    grep '^lib' | while read -r package; do
      status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
      [ "$status" = "install ok installed" ] || echo "$package"
    done
}

setup_smtp_sink() {
  if [ -x "$WRAPPER" ] && grep -qF "$PWD/$ROOT" "$WRAPPER" && [ -z "$(missing_libs 2>/dev/null)" ]; then
    return
  fi
  echo "bench/setup: fetching Debian's postfix package for smtp-sink"
  ls "$DEBS"/postfix_*.deb >/dev/null 2>&1 || fetch_debs postfix
  mkdir -p "$ROOT"
  dpkg -x "$DEBS"/postfix_*.deb "$ROOT"
  if [ -n "$(missing_libs)" ]; then
    mapfile -t packages < <(absent_lib_packages)
    if [ "${#packages[@]}" -gt 0 ]; then
      echo "bench/setup: fetching libraries smtp-sink needs: ${packages[*]}"
      fetch_debs "${packages[@]}"
      for package in "${packages[@]}"; do dpkg -x "$DEBS/${package}"_*.deb "$ROOT"; done
    fi
  fi
  local still
  still=$(missing_libs)
  if [ -n "$still" ]; then
    echo "bench/setup: smtp-sink still lacks: $still" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$WRAPPER")"
  cat > "$WRAPPER" <<EOF
#!/bin/sh
# Made by bench/setup.sh: runs the unpacked smtp-sink with its own libraries.
LD_LIBRARY_PATH="$LIB_PATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$PWD/$ROOT/usr/sbin/smtp-sink" "\$@"
EOF
  chmod +x "$WRAPPER"
}

setup_python_tools() {
  local stamp=.venv/.postbox-bench-requirements wanted
  wanted=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "bench/setup: installing bench/requirements.txt"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt
    echo "$wanted" > "$stamp"
  fi
}

setup_peers() {
  command -v npm >/dev/null || {
    echo "bench/setup: installing Debian's nodejs and npm for --peers"
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  }
  source scripts/node_packages.sh
  install_node_packages bench/peers bench/.peers "the Node peer (bullmq, nodemailer)"
}

setup_smtp_sink
setup_python_tools
if [ -n "$want_peers" ]; then setup_peers; fi
