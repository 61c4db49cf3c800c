"""No credential is committed: every tracked file is scanned for secret-shaped text."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b"
    ),
    "private key": re.compile(r"-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s:@'\"{}$]+@[\w.-]"),
}  # fmt: skip
# DVC's config files (INI): a credential key set to anything.
DVC_CONFIG = re.compile(r"^\s*(access_key_id|secret_access_key|session_token)\s*=")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [REPO / name for name in out.stdout.decode().split("\0") if name]


def findings(text: str, dvc_config: bool = False) -> list[str]:
    patterns = {**PATTERNS, **({"DVC credential setting": DVC_CONFIG} if dvc_config else {})}
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        found += [f"line {n}: {what}" for what, rx in patterns.items() if rx.search(line)]
    return found


def test_no_tracked_file_holds_a_credential():
    files = tracked_files()
    assert len(files) > 50  # the scan really sees the repository
    problems = {}
    for path in files:
        if not path.is_file():
            continue  # deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary (PNG figures)
        text = data.decode("utf-8", errors="replace")
        if hits := findings(text, dvc_config=path.parent.name == ".dvc"):
            problems[str(path.relative_to(REPO))] = hits
    assert not problems, f"credential-shaped text in tracked files: {problems}"


PLACEHOLDER = re.compile(r"(CHANGE[_-]?ME|<[^>]+>|\$\{\w+\})")


def secret_problems(docs: list[tuple[str, object]]) -> tuple[int, list[str]]:
    """(how many Secrets, what is wrong with them) among (file name, YAML document) pairs."""
    seen, problems = 0, []
    for name, doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            seen += 1
            values = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
            problems += [
                f"{name}: Secret value {key} is not a placeholder"
                for key, value in values.items()
                if value and not PLACEHOLDER.fullmatch(str(value))
            ]
    return seen, problems


def test_kubernetes_secrets_hold_placeholders_only():
    docs = [
        (str(path.relative_to(REPO)), doc)
        for path in tracked_files()
        if path.suffix in (".yaml", ".yml") and path.is_file()
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    ]
    seen, problems = secret_problems(docs)
    # The templates under k8s/secrets/ are Secrets: a scan that sees none checked nothing.
    assert seen >= 2, f"{seen} Secret manifests found among {len(docs)} YAML documents"
    assert not problems, problems


def test_the_secret_check_catches_a_filled_in_secret():
    filled = {"kind": "Secret", "stringData": {"AWS_SECRET_ACCESS_KEY": "hunter2", "ok": ""}}
    placeholder = {"kind": "Secret", "stringData": {"AWS_ACCESS_KEY_ID": "CHANGE_ME"}}
    seen, problems = secret_problems([("a.yaml", filled), ("b.yaml", placeholder)])
    assert seen == 2
    assert problems == ["a.yaml: Secret value AWS_SECRET_ACCESS_KEY is not a placeholder"]


@pytest.mark.parametrize(
    "planted",
    [
        "aws_access_key_id = AKIA" + "ABCDEFGHIJKLMNOP",
        "AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "git clone https://bot:" + "s3cr3t@github.com/org/repo",
        "    secret_access_key = " + "hunter2",
    ],
)
def test_the_scan_catches_planted_secrets(planted):
    assert findings(f"harmless\n{planted}\n", dvc_config=True)
