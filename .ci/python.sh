# Shared by ./runtests, ./demo and .ci/run: find an interpreter, keep a virtualenv up to date,
# and find (or install) the Chromium the browser tests drive.

# The newest CPython >= 3.11 on this machine (PATH first, then pyenv's versions).
# pyenv's shims on PATH are skipped: the versions behind them are looked at directly,
# and a shim takes half a second to answer, even to say it has no such version.
newest_python() {
  local best="" best_ver=0 candidate ver found
  for candidate in python3.14 python3.13 python3.12 python3.11 python3 \
                   "$HOME"/.pyenv/versions/3.*/bin/python3; do
    found="$(command -v "$candidate" 2>/dev/null)" || [ -x "$candidate" ] || continue
    [[ "$found" != */.pyenv/shims/* ]] || continue
    ver="$("$candidate" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null)" || continue
    if [ "$ver" -ge 311 ] && [ "$ver" -gt "$best_ver" ]; then best="$candidate"; best_ver="$ver"; fi
  done
  if [ -z "$best" ]; then echo "No Python >= 3.11 found." >&2; exit 1; fi
  echo "$best"
}

# .venv for the default set-up; a separate one per interpreter/Django pin otherwise.
# $3 is newest_python's answer when the caller already has it (it takes a while to find).
venv_dir() {
  local python="$1" django_spec="$2" newest="${3:-}" tag
  [ -n "$newest" ] || newest="$(newest_python)"
  if [ -z "${RUNTESTS_PYTHON:-}" ] && [ -z "$django_spec" ] && [ "$python" = "$newest" ]; then
    echo ".venv"; return
  fi
  tag="$("$python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
  [ -z "$django_spec" ] || tag="$tag-django$(echo "$django_spec" | sed 's/[^0-9.]\{1,\}/-/g')"
  echo ".venv-$tag"
}

# Whether every extra of the comma-separated list $1 is in the list $2.
extras_within() {
  local extra
  for extra in ${1//,/ }; do
    [[ ",$2," == *",$extra,"* ]] || return 1
  done
}

# The comma-separated union of the extras lists $1 and $2, sorted.
extras_union() {
  printf '%s\n' ${1//,/ } ${2//,/ } | sort -u | paste -sd, -
}

# Run pip quietly: its output (the build backend's warnings included) goes to
# $venv/pip.log, and is shown only when pip fails.
quiet_pip() {
  local venv="$1" out status=0
  shift
  out="$("$venv/bin/python" -m pip "$@" 2>&1)" || status=$?
  printf '%s\n' "$out" >>"$venv/pip.log"
  if [ "$status" -ne 0 ]; then
    printf '%s\n' "$out" >&2
    echo "pip $* failed (its output is above, and in $venv/pip.log)." >&2
    exit 1
  fi
}

# Create the virtualenv if missing and (re)install the project when its metadata changed
# or it lacks one of the extras asked for. One virtualenv serves both scripts: the demo
# asks for fewer extras than the tests, and whatever was installed stays (the stamp
# lists it), so neither reinstalls after the other.
ensure_venv() {
  local python="$1" venv="$2" extras="$3" django_spec="$4" stamp metadata have="" want
  local stamp_sum="" stamp_size="" stamp_django=""
  stamp="$venv/.installed"
  metadata="$(cat setup.cfg pyproject.toml | cksum)"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ]; then
    read -r stamp_sum stamp_size have stamp_django <"$stamp" || true
    if [ "$stamp_sum $stamp_size" = "$metadata" ] && [ "$stamp_django" = "$django_spec" ] \
        && extras_within "$extras" "$have"; then
      return 0
    fi
  fi
  want="$(extras_union "$extras" "$have")"
  echo "== installing the project and its extras ($want) into $venv: a minute or two the first time"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  : >"$venv/pip.log"
  quiet_pip "$venv" install --quiet --upgrade pip
  local reqs=(-e ".[$want]")
  [ -z "$django_spec" ] || reqs+=("Django$django_spec")
  quiet_pip "$venv" install --quiet "${reqs[@]}"
  "$venv/bin/python" -c 'import django' || { echo "Installing into $venv failed." >&2; exit 1; }
  echo "$metadata $want $django_spec" >"$stamp"
}

CHROMIUM=/usr/bin/chromium

# Make sure Debian's Chromium is at $CHROMIUM for the browser tests (Playwright drives it;
# it never downloads one): install it with apt-get when root (or sudo without a password)
# can. Otherwise, or if that fails, set CHROMIUM_MISSING to the reason.
ensure_chromium() {
  CHROMIUM_MISSING=""
  [ -x "$CHROMIUM" ] && return 0
  local sudo=()
  if ! command -v apt-get >/dev/null 2>&1; then
    CHROMIUM_MISSING="no Chromium at $CHROMIUM, and no apt-get to install it with"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      CHROMIUM_MISSING="no Chromium at $CHROMIUM (install it with: sudo apt-get install chromium)"
      return 0
    fi
  fi
  echo "== installing Chromium for the browser tests (apt-get install chromium)"
  export DEBIAN_FRONTEND=noninteractive
  if "${sudo[@]}" apt-get install -y -q chromium >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 \
           && "${sudo[@]}" apt-get install -y -q chromium >/dev/null 2>&1; }; then
    [ -x "$CHROMIUM" ] && return 0
  fi
  CHROMIUM_MISSING="no Chromium at $CHROMIUM: 'apt-get install chromium' failed"
}
