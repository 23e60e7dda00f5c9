"""Read Folio weight files from Python.

    import folio
    with folio.safe_open("model.folio", framework="np") as f:
        for name in f.keys():
            x = f.get_tensor(name)          # zero-copy view for plain dense tensors
        rows = f.get_rows("model.embed_tokens.weight", [1, 5, 9])   # dequantized
        f.verify()                          # every chunk hash; raises FolioError on damage

The same calls work on a sharded model's NAME.folio.index.json. The format is specified in
Formats/FOLIO.md of the Folio repository; this package reads versions 1 to 3.
"""

from ._errors import FolioError
from ._file import FolioFile, TensorSlice
from ._index import FolioIndex

__all__ = ["FolioError", "FolioFile", "FolioIndex", "TensorSlice", "safe_open", "load_file"]
__version__ = "0.1.0"


def safe_open(path, framework="np", device="cpu", exotic="float32"):
    """Open a .folio file or a .folio.index.json, as safetensors.safe_open.

    framework: "np" (NumPy arrays) or "pt" (torch tensors sharing the arrays' memory).
    exotic: how "np" returns BF16 and F8 tensors, which NumPy has no type for: "float32"
    (widened exactly, a copy) or "bits" (the stored bits as uint16 / uint8, zero-copy).
    With "pt" they are torch.bfloat16 / float8 tensors over the stored bits.
    """
    if device != "cpu":
        raise FolioError(f"device '{device}': this reader returns CPU arrays; move them yourself")
    if str(path).endswith(".index.json"):
        return FolioIndex(path, framework, exotic)
    return FolioFile(path, framework, exotic)


def load_file(path, framework="np", exotic="float32"):
    """Every tensor of a file or index as a dict name -> array (quantized ones dequantized)."""
    with safe_open(path, framework, exotic=exotic) as f:
        return {name: f.get_tensor(name) for name in f.keys()}
