# The options and checks bench/compare.sh and bench/scale.sh share; sourced by them.
#
# bench_options HELP_LINES ARGS...: reads --quick, -n N, --out FILE, --install-only and -h/--help (prints
# lines HELP_LINES of the calling script, a sed range like 2,20) into quick, runs, out and install_only,
# whose defaults the caller sets first; refuses other arguments, a non-numeric N, and a user other than
# root (PostgreSQL, and Patroni, run as the postgres user).
bench_options() {
  local help="$1"
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick=1 ;;
      -n) runs="$2"; shift ;;
      --out) out="$2"; shift ;;
      --install-only) install_only=1 ;;
      -h | --help) sed -n "${help}p" "$0"; exit 0 ;;
      *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
  done
  case "$runs" in '' | *[!0-9]*) echo "-n takes a number" >&2; exit 2 ;; esac
  if [ "$(id -u)" -ne 0 ]; then
    echo "run as root: PostgreSQL (and Patroni) run as the postgres user" >&2
    exit 1
  fi
}
