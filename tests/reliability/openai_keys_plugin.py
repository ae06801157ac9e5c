"""A detect-secrets plugin for OpenAI key shapes: project (`sk-proj-`), admin
(`sk-admin-`), service account (`sk-svcacct-`) and legacy (`sk-`) keys. Loaded by path
(detect-secrets' `file://` plugins), so it stays out of the package."""

from __future__ import annotations

import re

from detect_secrets.plugins.base import RegexBasedDetector


class OpenAIKeyDetector(RegexBasedDetector):
    """OpenAI API key"""

    secret_type = "OpenAI API key"
    denylist = (
        # the body is 20+ characters of the key alphabet: a redacted mask (`sk-proj…wxyz`) is not a key
        re.compile(r"(?<![A-Za-z0-9_-])sk-(?:proj-|admin-|svcacct-|None-)?[A-Za-z0-9_-]{20,}"),
    )
