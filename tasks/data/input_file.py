"""The input file of a run: which one is in force (--input over data.path) and whether it can be read as data."""
from pathlib import Path

from loraflow.schemas.config.data import DataConfig
from loraflow.tasks.common.config_files import input_file
from loraflow.tasks.common.errors import LoraflowError
from loraflow.tasks.common.text_files import readable_file

EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet")
# Compressed files are named as such rather than read as garbled text (an "encoding error" on line 1).
COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip"), (b"PK\x03\x04", "zip", "unzip"), (b"BZh", "bzip2", "bunzip2"),
              (b"\xfd7zXZ\x00", "xz", "unxz"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"))


def check_input(input_path: str) -> Path:
    """The input file's path; a user error when it is missing, a folder, unreadable, compressed, empty or of an
    unknown type."""
    path = readable_file(input_path, "input file", "pass one existing .jsonl/.json/.csv/.parquet file with --input or "
                                                    "data.path")
    with path.open("rb") as f:
        head = f.read(8)
    for magic, name, tool in COMPRESSED:
        if head.startswith(magic):
            raise LoraflowError(f"{path} is compressed with {name}; decompress it first ({tool} {path.name}) and pass "
                                f"the {', '.join(EXTENSIONS)} file inside.")
    if path.suffix.lower() not in EXTENSIONS:
        raise LoraflowError(f"{path}: unknown file type '{path.suffix}'; use one of {', '.join(EXTENSIONS)}.")
    if not head:
        raise LoraflowError(f"{path}: the file is empty; point --input at a file with records.")
    return path


def checked_input(config: DataConfig, input_path: str | None) -> Path:
    """The input file in force (input_path, else data.path), checked as check_input checks; the one input check the
    CLI runs before anything starts and the data flow runs again for runs started elsewhere."""
    path = input_file(config, input_path)
    if not path:
        raise LoraflowError("no input data: pass --input PATH or set data.path in the config")
    return check_input(path)
