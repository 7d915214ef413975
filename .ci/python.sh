# Shared by ./runtests and ./demo: find an interpreter and keep a virtualenv up to date.

# The newest CPython >= 3.11 on this machine (PATH first, then pyenv's versions).
newest_python() {
  local best="" best_ver=0 candidate ver
  for candidate in python3.14 python3.13 python3.12 python3.11 python3 \
                   "$HOME"/.pyenv/versions/3.*/bin/python3; do
    command -v "$candidate" >/dev/null 2>&1 || [ -x "$candidate" ] || continue
    ver="$("$candidate" -c 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])' 2>/dev/null)" || continue
    if [ "$ver" -ge 311 ] && [ "$ver" -gt "$best_ver" ]; then best="$candidate"; best_ver="$ver"; fi
  done
  if [ -z "$best" ]; then echo "No Python >= 3.11 found." >&2; exit 1; fi
  echo "$best"
}

# .venv for the default set-up; a separate one per interpreter/Django pin otherwise.
venv_dir() {
  local python="$1" django_spec="$2" tag
  if [ -z "${RUNTESTS_PYTHON:-}" ] && [ -z "$django_spec" ] && [ "$python" = "$(newest_python)" ]; then
    echo ".venv"; return
  fi
  tag="$("$python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
  [ -z "$django_spec" ] || tag="$tag-django$(echo "$django_spec" | sed 's/[^0-9.]\{1,\}/-/g')"
  echo ".venv-$tag"
}

# Create the virtualenv if missing and (re)install the project when its metadata changed.
ensure_venv() {
  local python="$1" venv="$2" extras="$3" django_spec="$4" stamp want
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  stamp="$venv/.installed"
  want="$(cat setup.cfg pyproject.toml | cksum) $extras $django_spec"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing the project into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    local reqs=(-e ".[$extras]")
    [ -z "$django_spec" ] || reqs+=("Django$django_spec")
    "$venv/bin/python" -m pip install --quiet "${reqs[@]}" 2>&1 | grep -v '^WARNING: Location' || true
    "$venv/bin/python" -c 'import django' || { echo "Installing into $venv failed." >&2; exit 1; }
    echo "$want" > "$stamp"
  fi
}
