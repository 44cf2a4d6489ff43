"""Writes the station Mosquitto configuration: listener, password file and a deny-by-default ACL."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import secrets
from pathlib import Path

from . import const as C
from .config import StationConfig
from .errors import ConfigError

log = logging.getLogger("jincun.gateway.broker")

PBKDF2_ITERATIONS = 101  # mosquitto_passwd's own default; auth runs on every connect of a small Pi


def password_line(user: str, password: str, *, salt: bytes | None = None) -> str:
    """One mosquitto password-file line in its PBKDF2-SHA512 ($7$) format."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(cfg: StationConfig) -> str:
    """ACL: the gateway reads the station and writes commands; each locker only its own topics."""
    base = f"{C.PREFIX}/{cfg.station}"
    lines = [f"user {cfg.mqtt.username}", f"topic read {base}/#"]
    lines += [f"topic write {base}/+/{k}" for k in C.DOWN_KINDS]
    for lk in cfg.lockers:
        lines += ["", f"user {lk.id}"]
        lines += [f"topic write {base}/{lk.id}/{k}" for k in C.UP_KINDS]
        lines += [f"topic read {base}/{lk.id}/{k}" for k in C.DOWN_KINDS]
    return "\n".join(lines) + "\n"


def broker_body(cfg: StationConfig, out_dir: Path, *, run_as: str | None = None) -> str:
    """Everything but `listener` and `persistence_location`, which depend on where the broker runs.

    run_as: the user a root-started broker switches to (mosquitto's default is `mosquitto`, which must
    be able to read out_dir).
    """
    # The gateway's session queues what arrives while it restarts or falls behind a burst: 200,000
    # messages of at most a few hundred bytes (mosquitto's default of 1,000 drops the rest silently).
    # 500 messages in flight to one client: with mosquitto's 20 the gateway's intake was bound by
    # round trips, not by CPU. Lockers get few messages, so the window costs them nothing.
    return (
        (f"user {run_as}\n" if run_as else "")
        +
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        # a client's id is its username: a board's credentials cannot connect under the gateway's or a
        # neighbour's id, which would disconnect the victim (MQTT lets a new client take over an id)
        "use_username_as_clientid true\n"
        f"password_file {out_dir / 'passwd'}\n"
        f"acl_file {out_dir / 'acl'}\n"
        "persistence true\n"
        "autosave_interval 30\n"
        "autosave_on_changes false\n"
        "max_queued_messages 200000\n"
        "max_inflight_messages 500\n"
        "max_packet_size 8192\n"
        "set_tcp_nodelay true\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        "connection_messages true\n"
        + audit_lines(cfg)
    )


def audit_lines(cfg: StationConfig) -> str:
    """Send the broker log to the file the gateway follows, at debug level, where ACL refusals show.

    Debug logs two short lines per message: at a station's load (events and minute telemetry) that is
    a few KB a minute, kept on tmpfs.
    """
    if cfg.mqtt.audit_log is None:
        return ""
    return f"log_dest file {cfg.mqtt.audit_log}\nlog_type information\nlog_type debug\n"


def tls_lines(cfg: StationConfig) -> str:
    """The lockers' listener, TLS only, on every interface, when `mqtt.tls` is set."""
    t = cfg.mqtt.tls
    if t is None:
        return ""
    return (f"listener {t.port}\ncafile {t.cafile}\ncertfile {t.certfile}\nkeyfile {t.keyfile}\n"
            f"require_certificate {'true' if t.require_certificate else 'false'}\ntls_version tlsv1.2\n")


def plain_listener(cfg: StationConfig) -> str:
    """The plain listener's address: the gateway's own, on loopback, outside the demo.

    Lockers reach the broker over TLS only (`mqtt.tls`); no plain listener faces the locker network. The
    gateway connects from the same Pi, so its session needs no TLS. A demo station may open the plain
    listener to its `mqtt.listen`.
    """
    if cfg.demo:
        return cfg.mqtt.listen
    if cfg.mqtt.tls is None:
        raise ConfigError("outside the demo lockers connect over TLS: station.json needs mqtt.tls "
                          "(`jincun gateway enroll` writes it with the station's CA and certificate)")
    if not is_loopback(cfg.mqtt.listen):
        raise ConfigError(f"mqtt.listen {cfg.mqtt.listen} is not a loopback address: outside the demo the plain "
                          "listener is the gateway's own, and lockers use the TLS listener (mqtt.tls.port)")
    return cfg.mqtt.listen


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def write_auth_files(cfg: StationConfig, out_dir: str | Path) -> Path:
    """Write passwd and acl into out_dir (mode 0600); returns out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    users = [(cfg.mqtt.username, cfg.mqtt.password)] + [(lk.id, lk.mqtt_password) for lk in cfg.lockers]
    _write_private(out / "passwd", "".join(password_line(u, p) + "\n" for u, p in users))
    _write_private(out / "acl", acl_text(cfg))
    return out


def broker_user(out_dir: Path) -> str | None:
    """The `user` line a root-started broker needs to read out_dir, or None to keep mosquitto's default.

    Mosquitto started as root switches to the `mosquitto` user. When that user cannot reach out_dir
    (a private folder of root, as in a development checkout), the broker has to stay root.
    """
    if os.geteuid() != 0:
        return None
    try:
        import pwd
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return None
    for folder in [out_dir, *out_dir.parents]:
        st = folder.stat()
        if not (st.st_mode & 0o001 or (st.st_gid == pw.pw_gid and st.st_mode & 0o010)
                or (st.st_uid == pw.pw_uid and st.st_mode & 0o100)):
            log.warning("mosquitto user cannot reach %s: the broker keeps running as root", folder)
            return "root"
    os.chown(out_dir, pw.pw_uid, pw.pw_gid)  # persistence is written here
    return None


def write_broker_config(cfg: StationConfig, out_dir: str | Path, *, listener: bool = True,
                        run_as: str | None = "auto") -> Path:
    """Write mosquitto.conf, passwd and acl into out_dir; returns the path of mosquitto.conf.

    run_as: "auto" picks what a root-started broker needs (see broker_user), None adds no `user` line.
    """
    out = Path(out_dir).resolve()
    write_auth_files(cfg, out)
    if run_as == "auto":
        run_as = broker_user(out)
    head = ""
    if listener:
        head = f"listener {cfg.mqtt.port} {plain_listener(cfg)}\npersistence_location {out}/\n"
    conf = out / "mosquitto.conf"
    conf.write_text(head + broker_body(cfg, out, run_as=run_as) + (tls_lines(cfg) if listener else ""),
                    encoding="utf-8")
    return conf


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    if os.geteuid() == 0:
        # a root-started broker reads these after switching to its own user
        try:
            import pwd
            pw = pwd.getpwnam("mosquitto")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass
