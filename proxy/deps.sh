# shellcheck shell=bash
# Shared by proxy/run and tests/run: installs the Debian packages a step needs.
# As root it runs apt-get; otherwise it prints the exact command and stops.

# ensure_packages PKG...: installs the packages that are not installed yet.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "sluice needs these Debian packages: ${missing[*]}" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# What building sluice needs.
SLUICE_BUILD_PACKAGES=(gcc make cmake pkg-config libc6-dev libevent-dev libssl-dev libyaml-dev
  libmaxminddb-dev libidn2-dev openssl)

# What the test suite needs on top.
SLUICE_TEST_PACKAGES=(libcmocka-dev libcurl4-openssl-dev curl clang libclang-rt-14-dev
  clang-format python3 python3-jsonschema perl libmaxmind-db-writer-perl systemd mandoc haproxy
  git prometheus calamaris strace)
