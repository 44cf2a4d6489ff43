#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the system packages a target needs, and starts the services it uses.
# usage: scripts/sysdeps.sh demo|test
set -euo pipefail
want="${1:-test}"

need_cmds=(python3)
need_pkgs=(python3-venv)
if [ "$want" = test ]; then
  need_cmds+=(mosquitto mosquitto_passwd pg_ctlcluster psql npm rsvg-convert chromium influxd)
  need_pkgs+=(mosquitto mosquitto-clients postgresql postgresql npm librsvg2-bin chromium influxdb)
fi

missing=()
for i in "${!need_cmds[@]}"; do
  command -v "${need_cmds[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${need_cmds[$i]}" ] || [ -x "/usr/bin/${need_cmds[$i]}" ] || missing+=("${need_pkgs[$i]}")
done
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ "$want" = test ] && ! fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy"; then
  missing+=(fonts-wqy-microhei)  # Chinese glyphs: browser screenshots, the locker display's glyph file
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "sysdeps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "sysdeps: missing system packages: ${missing[*]}" >&2
    echo "sysdeps: install them with: sudo apt-get install -y ${missing[*]}" >&2
    if [ "$want" = test ]; then exit 1; fi
  fi
fi

if [ "$want" = test ]; then
  # PostgreSQL: start the cluster if nothing answers, then make sure the test role exists.
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      ver=$(ls /etc/postgresql | sort -V | tail -n 1)
      pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    else
      echo "sysdeps: PostgreSQL is not running on 127.0.0.1:5432; start it (pg_ctlcluster VERSION main start)" >&2
      exit 1
    fi
  fi
  if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
    runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jincun') THEN
    CREATE ROLE jincun LOGIN CREATEDB PASSWORD 'jincun';
  END IF;
END $$;
SQL
  fi
fi
