"""Which large model teaches, how long to wait for it, how often to retry.

Settings come from, in order of precedence: environment variables, the
``[teacher]`` table of ``forge.toml`` in the data directory (or a TOML file
given explicitly), then the defaults.  :class:`TeacherConfig` is defined with
the other settings in :mod:`generator.settings` (one model, located errors)
and importable from here.

===================  ========================  ==================================
environment          TOML key                  meaning
===================  ========================  ==================================
FORGE_TEACHER        model                     litellm model name: ``gpt-4o-mini``,
                                               ``anthropic/claude-3-5-haiku-latest``,
                                               ``gemini/gemini-2.0-flash``,
                                               ``openai/<name>`` for a local server
OPENAI_BASE_URL      base_url                  an OpenAI-compatible endpoint
                                               (vLLM, llama.cpp server, a proxy)
FORGE_TEACHER_TIMEOUT  timeout_s               seconds per HTTP request
FORGE_TEACHER_RETRIES  max_retries             HTTP retries (429 honours Retry-After)
===================  ========================  ==================================

API keys are never part of this config: litellm reads them from the
provider's usual variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``), and nothing here logs, stores or formats them.

>>> cfg = TeacherConfig.load(env={"FORGE_TEACHER": "anthropic/claude-3-5-haiku-latest"}, toml_path=None)
>>> cfg.model, cfg.key_env()
('anthropic/claude-3-5-haiku-latest', 'ANTHROPIC_API_KEY')
>>> cfg.usable(env={})
False
"""

from __future__ import annotations

from generator.settings import TeacherConfig

__all__ = ["TeacherConfig"]
