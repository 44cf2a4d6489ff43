#!/bin/sh
# Install the jincun station gateway on Raspberry Pi OS (Debian bookworm): packages, a service user,
# a virtualenv, the station's Mosquitto config and two systemd units. Run as root from a checkout, either
# enrolling the station with the county's one-time token (docs/deploy.md) or with a station.json at hand:
#   sudo gateway/deploy/install.sh --enroll https://CLOUD TOKEN [--tls-host 192.168.4.1 ...]
#   sudo gateway/deploy/install.sh /path/to/station.json
# Re-running it upgrades the code and rewrites the broker config; the outbox database is kept.
# With a wheelhouse from `jincun gateway bundle` beside the checkout (wheelhouse/aarch64 or wheelhouse/armv7l,
# or JINCUN_WHEELHOUSE=DIR), Python packages come from it alone: no package index is needed.
set -eu

USAGE="usage: install.sh /path/to/station.json | install.sh --enroll CLOUD_URL TOKEN"
if [ "${1:-}" = "--enroll" ]; then
    CLOUD_URL=${2:?$USAGE}
    TOKEN=${3:?$USAGE}
    shift 3  # what follows goes to `jincun gateway enroll` (e.g. --tls-host ADDR)
    STATION_JSON=/etc/jincun/station.json
else
    STATION_JSON=${1:?$USAGE}
fi
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PREFIX=/opt/jincun
ETC=/etc/jincun
VAR=/var/lib/jincun

[ "$(id -u)" -eq 0 ] || { echo "run as root (sudo)" >&2; exit 1; }

PKGS="mosquitto python3 python3-venv logrotate"
# already installed (a prepared image, or a re-run): no Debian mirror is needed either
# shellcheck disable=SC2086
if ! dpkg -s $PKGS >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q $PKGS
fi
WHEELS=${JINCUN_WHEELHOUSE:-$SRC/wheelhouse}/$(uname -m)

id jincun >/dev/null 2>&1 || useradd --system --home-dir "$VAR" --shell /usr/sbin/nologin jincun
usermod -a -G dialout jincun

install -d -m 0755 "$PREFIX" "$ETC"
install -d -m 0750 -o jincun -g jincun "$VAR"
rm -rf "$PREFIX/src.new"
cp -a "$SRC" "$PREFIX/src.new"
rm -rf "$PREFIX/src" && mv "$PREFIX/src.new" "$PREFIX/src"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
if [ -d "$WHEELS" ]; then
    # the bundle's own wheel of the project is reinstalled on every run, so a re-run upgrades the code
    "$PREFIX/venv/bin/pip" install -q --no-index --find-links "$WHEELS" "jincun[gateway]"
    "$PREFIX/venv/bin/pip" install -q --no-index --no-deps --force-reinstall "$WHEELS"/jincun-*.whl
else
    "$PREFIX/venv/bin/pip" install -q --upgrade pip
    "$PREFIX/venv/bin/pip" install -q "$PREFIX/src[gateway]"
fi

if [ -n "${TOKEN:-}" ] && [ ! -e "$ETC/station.json" ]; then
    "$PREFIX/venv/bin/jincun" gateway enroll --cloud "$CLOUD_URL" --token "$TOKEN" --out "$ETC" \
        --db "$VAR/gateway.db" --audit-log /run/jincun-mosquitto/mosquitto.log "$@"
fi
[ "$STATION_JSON" -ef "$ETC/station.json" ] || install -m 0640 "$STATION_JSON" "$ETC/station.json"
chown root:jincun "$ETC/station.json"
chmod 0640 "$ETC/station.json"
# the gateway's outbox lives under /var/lib/jincun whatever the config says about a relative path
cd "$VAR"
"$PREFIX/venv/bin/jincun" gateway init --config "$ETC/station.json" --out "$ETC/mosquitto"
chown -R mosquitto:mosquitto "$ETC/mosquitto"
chmod 0750 "$ETC/mosquitto"

install -m 0644 "$SRC/gateway/deploy/jincun-mosquitto.service" /etc/systemd/system/
install -m 0644 "$SRC/gateway/deploy/jincun-gateway.service" /etc/systemd/system/
install -m 0644 "$SRC/gateway/deploy/jincun-mosquitto.logrotate" /etc/logrotate.d/jincun-mosquitto

# the distribution's broker would hold port 1883; the station runs its own
systemctl disable --now mosquitto.service 2>/dev/null || true
systemctl daemon-reload
systemctl enable --now jincun-mosquitto.service
systemctl enable --now jincun-gateway.service
systemctl restart jincun-mosquitto.service jincun-gateway.service
echo "installed; health: curl -s http://127.0.0.1:\$(python3 -c 'import json;print(json.load(open(\"$ETC/station.json\")).get(\"gateway\",{}).get(\"http\",{}).get(\"port\",8100))')/health"
