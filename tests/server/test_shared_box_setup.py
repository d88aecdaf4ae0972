"""The shared box set up exactly as docs/shared-box.md writes it: the users and groups of its
set-up block, the folders scripts/agenttui.service has systemd make, and the server started as
the unit starts it (its user, groups, umask, environment and command). systemd does not run
here, so the test plays its part, under a private root folder standing for `/`. A member then
submits through the socket with the real client and sees the result; a user outside the group
is told which group to ask for."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

from agenttui.core.errors import ACCESS_DENIED

from ..helpers import wait_for
from .shared_box import users_file
from .unix_users import UnixUsers, unix_users, user_env  # noqa: F401  (unix_users is a fixture)

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "scripts" / "agenttui.service"
DOCS = REPO / "docs" / "shared-box.md"
INSTALLED = "opt/agenttui/.venv"  # where the docs install agenttui (ExecStart), under the test's root
# systemd's folder settings: where each kind lives, and whether the service user owns it.
SYSTEMD_DIRS = {"Runtime": ("run", True), "State": ("var/lib", True), "Logs": ("var/log", True),
                "Configuration": ("etc", False)}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unit_service(text: str) -> dict[str, list[str]]:
    """The unit's [Service] settings: each key with its values in order."""
    settings: dict[str, list[str]] = defaultdict(list)
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings[key.strip()].append(value.strip())
    return settings


def docs_block(section: str, language: str) -> str:
    """The first code block in `language` of the docs' section `section`."""
    text = DOCS.read_text().split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return text.split(f"```{language}\n", 1)[1].split("```", 1)[0]


class Box:
    """The docs' names (users, groups) and paths, as this test's: random names, paths under `root`."""

    def __init__(self, users: UnixUsers, root: Path):
        self.root = root
        self.agenttui = Path()  # the installed command (install_for_everyone)
        prefix = f"att{users.suffix}"
        self.names = {"agenttui-users": f"{prefix}usr", "agenttui-admins": f"{prefix}adm", "agenttui": f"{prefix}svc",
                      "alice": f"{prefix}alice", "bob": f"{prefix}bob", "carol": f"{prefix}carol"}

    def __call__(self, text: str) -> str:
        """`text` with the docs' names and paths replaced by the test's."""
        names = "|".join(re.escape(name) for name in sorted(self.names, key=len, reverse=True))
        text = re.sub(rf"(?<![\w/.-])({names})(?![\w-])", lambda m: self.names[m.group(1)], text)
        paths = r"(?<![\w.-])(/var/lib|/var/log|/run|/etc|/opt)(?=/|\s|$)"
        return re.sub(paths, lambda m: f"{self.root}{m.group(1)}", text)

    def make_dirs(self, service: dict[str, list[str]], owner: pwd.struct_passwd, gid: int) -> None:
        """The folders systemd makes for the unit: owned by its user (Configuration: root) with the unit's mode."""
        for kind, (base, owned) in SYSTEMD_DIRS.items():
            mode = int(service.get(f"{kind}DirectoryMode", ["0755"])[-1], 8)
            for name in " ".join(service.get(f"{kind}Directory", [])).split():
                path = self.root / base / name
                path.mkdir(parents=True)
                os.chown(path, owner.pw_uid if owned else 0, gid if owned else 0)
                path.chmod(mode)


def python_for_everyone() -> str:
    """A Python that every user may run, of this one's minor version (the dependencies are
    compiled for it): this one's base interpreter unless it sits in root's private home."""
    for candidate in (Path(sys.base_prefix) / "bin" / "python3", Path("/usr/bin/python3")):
        path = candidate.resolve()
        if path.exists() and all(folder.stat().st_mode & stat.S_IXOTH for folder in path.parents):
            version = subprocess.run([str(path), "-c", "import sys; print(sys.version_info[:2])"],
                                     capture_output=True, text=True).stdout.strip()
            if version == str(sys.version_info[:2]):
                return str(path)
    pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that other users may run")


def install_for_everyone(root: Path) -> Path:
    """Step 2 of the set-up without the network: a virtual environment under `root`'s /opt that
    every user may run, on the system's Python, importing this checkout and its dependencies
    (compiled for the same Python minor version). Returns its `agenttui` command."""
    venv = root / INSTALLED
    subprocess.run([python_for_everyone(), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(venv / "bin/python"), "-c", where], check=True, capture_output=True, text=True)
    site = site.stdout.strip()
    # addsitedir, not a bare path: the checkout's editable install is itself a .pth file there.
    Path(site, "agenttui-checkout.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    command = venv / "bin/agenttui"
    script = (Path(sys.executable).parent / "agenttui").read_text().split("\n", 1)[1]
    command.write_text(f"#!{venv / 'bin/python'}\n{script}")
    subprocess.run(["chmod", "-R", "a+rX", str(root / "opt")], check=True)
    command.chmod(0o755)
    return command


def start_as_the_unit(box: Box, users: UnixUsers) -> tuple[subprocess.Popen, dict[str, str]]:
    """ExecStart run as systemd runs it: the unit's user and group, the user's groups from the
    group file plus SupplementaryGroups, its umask, and a clean environment with its
    Environment= lines (and this test machine's AGENTTUI_* settings under them)."""
    service = unit_service(UNIT.read_text())
    svc = pwd.getpwnam(box(service["User"][0]))
    gid = grp.getgrnam(box(service["Group"][0])).gr_gid
    box.make_dirs(service, svc, gid)
    supplementary = [grp.getgrnam(name).gr_gid for name in box(" ".join(service["SupplementaryGroups"])).split()]
    groups = sorted(set(os.getgrouplist(svc.pw_name, gid)) | set(supplementary))
    env = {k: v for k, v in os.environ.items() if k.startswith("AGENTTUI_")}
    env.update(PATH=SYSTEMD_PATH, HOME=svc.pw_dir, USER=svc.pw_name, LOGNAME=svc.pw_name, SHELL=svc.pw_shell)
    for line in service["Environment"]:
        env.update(assignment.split("=", 1) for assignment in shlex.split(box(line)))
    server = subprocess.Popen(
        shlex.split(box(service["ExecStart"][0])), user=svc.pw_uid, group=gid, extra_groups=groups,
        umask=int(service.get("UMask", ["0022"])[-1], 8), env=env, cwd="/",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    users.processes.append(server)
    return server, env


@pytest.fixture
def box(unix_users):  # noqa: F811
    root = Path(tempfile.mkdtemp(prefix="att", dir="/tmp"))
    box = Box(unix_users, root)
    # Made by the docs' block: removed by the fixture (users before groups).
    unix_users.users.append(box.names["agenttui"])
    unix_users.groups += [box.names["agenttui-users"], box.names["agenttui-admins"], box.names["agenttui"]]
    try:
        root.chmod(0o755)  # stands for `/`, with the folders of root's that systemd makes the unit's in
        for base, _ in SYSTEMD_DIRS.values():
            (root / base).mkdir(parents=True)
        box.agenttui = install_for_everyone(root)
        yield box
    finally:
        unix_users.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_the_documented_set_up_starts_serves_a_member_and_tells_an_outsider_which_group(box, unix_users):  # noqa: F811
    for role in ("alice", "bob", "carol"):  # the box's existing users, named in the docs' block
        unix_users.user(role)
    outsider = unix_users.user("eve")
    subprocess.run(["sh", "-e", "-c", box(docs_block("Set-up", "sh"))], check=True, capture_output=True, text=True)

    server, env = start_as_the_unit(box, unix_users)
    socket_path = Path(env["AGENTTUI_SOCKET_PATH"])
    wait_for(lambda: socket_path.exists() or server.poll() is not None, 30)
    log = box.root / "var/log/agenttui/server.log"
    assert server.poll() is None, (server.stderr.read().decode(errors="replace"),
                                   log.read_text(errors="replace") if log.exists() else "no server.log")
    info = socket_path.stat()
    assert (grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)) == (box.names["agenttui-users"], 0o660)

    # A member, set up as "Each user" says, submits with the real client and sees the result.
    alice = pwd.getpwnam(box.names["alice"])
    for folder in ("config", "config/agenttui"):
        (Path(alice.pw_dir) / folder).mkdir()
        os.chown(Path(alice.pw_dir) / folder, alice.pw_uid, alice.pw_gid)
    users_file(alice, "config/agenttui/config.toml", box(docs_block("Each user", "toml")))
    agent = users_file(alice, "agent.py", "def run(query):\n    return 'hello ' + query\n")
    submitted = unix_users.run(alice, [str(box.agenttui), "submit", str(agent), "--query", "box", "--egress", "none"],
                               user_env(alice), timeout=90)
    assert submitted.returncode == 0, (submitted.stdout, submitted.stderr)
    assert "hello box" in submitted.stdout

    # A user outside the group: told which group to ask for, not that the server is down.
    env = user_env(outsider, AGENTTUI_SOCKET_PATH=str(socket_path))
    denied = unix_users.run(outsider, [str(box.agenttui), "queue"], env)
    assert denied.returncode == ACCESS_DENIED.exit, (denied.stdout, denied.stderr)
    assert "permission denied" in denied.stderr and f"add you to group {box.names['agenttui-users']}" in denied.stderr
    assert "Traceback" not in denied.stderr
