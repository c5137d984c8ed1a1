from enum import StrEnum


class DensityScoreRequestLogdet(StrEnum):
    AUTO = "auto"
    EXACT = "exact"
    SERIES = "series"

    def __str__(self) -> str:
        return str(self.value)
