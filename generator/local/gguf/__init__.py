"""GGUF files of a student: export for llama.cpp-family runtimes (the trainer and `generator.llama_server` use it)."""

from generator.local.gguf.export import GGUF_TYPES, GGUFExportError, export_gguf, read_gguf_summary

__all__ = ["GGUF_TYPES", "GGUFExportError", "export_gguf", "read_gguf_summary"]
