"""The call session: one carrier leg joined to one brain."""
