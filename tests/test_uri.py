"""wsfm.uri.is_uri: a scheme makes a URI; a path, even one with a colon, is not one."""

from pathlib import Path

from wsfm.uri import is_uri


def test_schemes_are_uris_and_paths_are_not():
    for uri in ("s3://bucket/prefix", "gs://b/p", "file:///tmp/x"):
        assert is_uri(uri)
    for path in ("/tmp/x", "relative/dir", "c:data", "://no-scheme", Path("s3://not-a-str")):
        assert not is_uri(path)
