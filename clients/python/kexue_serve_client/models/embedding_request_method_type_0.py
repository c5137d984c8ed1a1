from enum import StrEnum


class EmbeddingRequestMethodType0(StrEnum):
    AVERAGE = "average"
    FOLD_IN = "fold_in"
    MEAN = "mean"

    def __str__(self) -> str:
        return str(self.value)
