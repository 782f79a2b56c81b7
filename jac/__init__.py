"""Jac sources (package data): level types and the `by llm()` functions."""
