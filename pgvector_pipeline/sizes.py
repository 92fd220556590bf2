"""Sizes in messages, logs and metadata, as people read them."""


def human_size(num_bytes: int) -> str:
    """Bytes as B, KB, MB, GB or TB (powers of 1024)."""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
