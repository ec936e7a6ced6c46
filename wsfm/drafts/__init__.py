"""Draft generators: fit, sample, save, load."""

from wsfm.drafts.base import Draft, read_kind
from wsfm.drafts.gmm import COVARIANCE_TYPES, GMMDraft
from wsfm.drafts.registry import DRAFTS, get_draft, load_draft

__all__ = ["COVARIANCE_TYPES", "DRAFTS", "Draft", "GMMDraft", "get_draft", "load_draft",
           "read_kind"]
