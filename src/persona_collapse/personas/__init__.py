"""Persona sets: loading, selecting and hashing; the published PersonaHub set."""

from .._downloads import cache_dir
from ._load import PersonaSet, load_persona_file
from ._personahub import (
    ENV_LOCAL_COPY,
    PERSONAHUB_COSTA,
    PERSONAHUB_SHA256,
    PERSONAHUB_URL,
    fetch_personahub,
    load_personas,
)

__all__ = [
    "ENV_LOCAL_COPY",
    "PERSONAHUB_COSTA",
    "PERSONAHUB_SHA256",
    "PERSONAHUB_URL",
    "PersonaSet",
    "cache_dir",
    "fetch_personahub",
    "load_persona_file",
    "load_personas",
]
