"""Draft generators: fit, sample, save, load.

- ``GMMDraft``: a Gaussian mixture in data space (toy2d).
- ``PCAGMMDraft``: a Gaussian mixture in the top principal components (digits); its drafts
  lie on a low-dimensional subspace, so train with ``draft_noise > 0``.
- ``VAEDraft``: a small MLP VAE, decoder means of prior draws (digits).
- ``CharNgramDraft``, ``GRUDraft``: character language models that write words as codes
  (words; see ``wsfm.data.words``); ``OneHotDraft`` gives their words as one-hot vectors
  (the continuous form, ``benchmarks/words_form.py``).
- ``WindowNgramDraft``, ``WindowGRUDraft``: a character n-gram and a character GRU over
  windows cut from running text (prose).

Left out, and why: neither facebookresearch/flow_matching nor TorchCFM has drafts (their
sources are Gaussian noise, or a second data set for data-to-data bridges); a pretrained
generator as a draft would have to be downloaded, which this project never does.
"""

from wsfm.drafts.base import Draft, SubstituteDraft, read_kind
from wsfm.drafts.gmm import COVARIANCE_TYPES, GMMDraft
from wsfm.drafts.gru import GRUDraft
from wsfm.drafts.kinds import DRAFTS, get_draft, load_draft
from wsfm.drafts.ngram import CharNgramDraft
from wsfm.drafts.onehot import OneHotDraft
from wsfm.drafts.pca_gmm import PCAGMMDraft
from wsfm.drafts.vae import VAE, VAEDraft
from wsfm.drafts.window_gru import WindowGRUDraft
from wsfm.drafts.window_ngram import WindowNgramDraft

__all__ = ["COVARIANCE_TYPES", "DRAFTS", "CharNgramDraft", "Draft", "GMMDraft", "GRUDraft",
           "OneHotDraft", "PCAGMMDraft", "SubstituteDraft", "VAE", "VAEDraft", "WindowGRUDraft",
           "WindowNgramDraft", "get_draft", "load_draft", "read_kind"]
