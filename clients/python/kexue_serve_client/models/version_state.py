from enum import StrEnum


class VersionState(StrEnum):
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"
    LOADING = "LOADING"
    UNLOADED = "UNLOADED"

    def __str__(self) -> str:
        return str(self.value)
