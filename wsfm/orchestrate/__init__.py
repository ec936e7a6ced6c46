"""The pipeline's orchestration: the DAG of stages, the runners (Ray and in-process), the
artifact store and its fingerprints, and the checks made before anything runs on a cluster.

A regular package (not a namespace package): a Ray job's ``working_dir`` copy of ``wsfm``
must shadow an installed one whole, and a namespace package would merge the two.
"""
