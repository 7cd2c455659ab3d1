"""File input and output, re-exported from its home :mod:`hierseg.core.io` for code written against this path."""

from hierseg.core.io import (
    LOCK_NAME,
    FolderLock,
    atomic_write_bytes,
    atomic_write_group,
    atomic_write_text,
    check_regular,
    is_temporary,
    make_folder,
    os_cause,
    read_bytes,
    read_text,
    remove_temporaries,
    write_error,
)

__all__ = ["LOCK_NAME", "FolderLock", "atomic_write_bytes", "atomic_write_group", "atomic_write_text", "check_regular",
           "is_temporary", "make_folder", "os_cause", "read_bytes", "read_text", "remove_temporaries", "write_error"]
