# shellcheck shell=bash
# Installs or checks what keybridge's build and tests need. Sourced by scripts/test
# and .ci/run; every function is safe to run again.

KB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KB_TARGET=${CARGO_TARGET_DIR:-$KB_ROOT/target}
KB_TOOLCHAIN=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$KB_ROOT/rust-toolchain.toml")

kb_log() { printf '==> %s\n' "$*" >&2; }

kb_apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: $*; install them with: sudo apt-get install -y $*" >&2
    return 1
  fi
  kb_log "installing $* (apt)"
  if [ -z "${KB_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    KB_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The pinned toolchain. Machines without network access to toolchain downloads may carry
# the same release as `stable`; link it under the pinned name in that case.
kb_ensure_toolchain() {
  if rustup run "$KB_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    return 0
  fi
  local stable_version
  stable_version=$(rustup run stable rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$stable_version" = "$KB_TOOLCHAIN" ]; then
    kb_log "linking the installed stable $stable_version as toolchain $KB_TOOLCHAIN"
    rustup toolchain link "$KB_TOOLCHAIN" "$(rustup run stable rustc --print sysroot)"
  else
    kb_log "installing Rust $KB_TOOLCHAIN"
    rustup toolchain install "$KB_TOOLCHAIN" --profile minimal --component rustfmt,clippy
  fi
}

kb_ensure_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    return 0
  fi
  kb_log "installing cargo-nextest (crates.io)"
  cargo install cargo-nextest --locked
}

# The PostgreSQL server binaries (initdb, pg_ctl): the store tests start a throwaway cluster.
kb_ensure_postgres() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    return 0
  fi
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    return 0
  fi
  kb_apt_install postgresql
}

# Debian's Chromium: the console tests drive it headless over CDP.
kb_ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  kb_apt_install chromium
}

# A virtualenv with the independent implementations the interop tests compare against.
kb_ensure_interop_venv() {
  local venv="$KB_TARGET/interop-venv"
  local requirements="$KB_ROOT/tests/interop/requirements.txt"
  local stamp="$venv/.requirements.sha256"
  local want
  want=$(sha256sum "$requirements" | awk '{print $1}')
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    export KEYBRIDGE_INTEROP_PYTHON="$venv/bin/python"
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1; then
    kb_apt_install python3-venv
  fi
  kb_log "creating the interop virtualenv in $venv (PyPI)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
  export KEYBRIDGE_INTEROP_PYTHON="$venv/bin/python"
}
