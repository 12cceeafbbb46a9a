"""The example orders database: built from `orders.sql`, opened read-only.

Only the SQL seed is committed (reviewable, diffable); the SQLite file is derived from
it. A clean checkout needs no build step: `database_path()` builds a cached copy on
first use, in the user's cache folder (`$XDG_CACHE_HOME/runq`, else `~/.cache/runq`)
under a name that includes the seed's SHA-256, so a changed seed can never be served
from a stale file and every worker of that user shares one copy. Not the shared temp
folder: there another local user could plant a database at the predictable name first
and have the tools answer from it. The folder is made 0700 and must be the user's own.
The build writes a temporary file and renames it into place, so workers racing to
build it at the same moment are harmless.

`python -m examples.data.orders_db [PATH]` builds `examples/data/orders.sqlite` (or
PATH) explicitly; `database_path()` prefers that file while it matches the seed.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SEED = DATA_DIR / "orders.sql"
DEFAULT_DATABASE = DATA_DIR / "orders.sqlite"


def seed_digest(seed: Path = SEED) -> str:
    """SHA-256 of the seed file; a database built from it records this value."""
    return hashlib.sha256(seed.read_bytes()).hexdigest()


def build_database(target: Path = DEFAULT_DATABASE, seed: Path = SEED) -> Path:
    """Create the database at `target` from `seed` (replacing any file there) atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    script = seed.read_text(encoding="utf-8")
    partial = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    partial.unlink(missing_ok=True)
    try:
        with closing(sqlite3.connect(partial)) as db:
            db.executescript(script)
            db.execute("CREATE TABLE build_info (seed_sha256 TEXT NOT NULL)")
            db.execute("INSERT INTO build_info VALUES (?)", (seed_digest(seed),))
            db.commit()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def built_from(database: Path) -> str | None:
    """The seed digest `database` was built from, or None if it is not such a database."""
    if not database.is_file():
        return None
    try:
        with closing(connect(database)) as db:
            row = db.execute("SELECT seed_sha256 FROM build_info").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def cache_dir() -> Path:
    """This user's private folder for derived example data (created 0700).

    Refuses a folder another user owns or others can write to: a database planted there
    would be read by the example tools as if it were the shop's."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "runq"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PermissionError(
            f"{folder} must be a folder of your own that others cannot write to; "
            "fix its owner or mode (chmod 700), or set XDG_CACHE_HOME elsewhere"
        )
    return folder


def database_path() -> Path:
    """A database matching the current seed: the explicit build, else the cached copy."""
    digest = seed_digest()
    if built_from(DEFAULT_DATABASE) == digest:
        return DEFAULT_DATABASE
    cached = cache_dir() / f"orders-{digest[:16]}.sqlite"
    if built_from(cached) != digest:
        build_database(cached)
    return cached


def connect(database: Path | None = None) -> sqlite3.Connection:
    """A read-only connection (rows as `sqlite3.Row`); tools can look, never change."""
    path = database if database is not None else database_path()
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_DATABASE
    print(f"built {build_database(target)} from {SEED.name} ({seed_digest()[:16]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
