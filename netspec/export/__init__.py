"""Emitters from a netspec Graph to other formats."""
