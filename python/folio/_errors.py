class FolioError(Exception):
    """A file, index or request that Folio refuses; the message names the file and the field."""
