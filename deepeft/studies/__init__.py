"""Studies: sweeps over architectures and initialisations, run through Dask into an embedded
resumable SQLite store, loaded back as pandas (see docs/studies.md).

- :func:`load_study_file`  read + validate a TOML/YAML study file
- :func:`run_study`        compute every unfinished point (in-process, LocalCluster, or a cluster)
- :func:`load_study`       the stored results as a pandas DataFrame
"""
from .results import load_study, load_study_xarray  # noqa: F401
from .runner import RunSummary, plan, run_study  # noqa: F401
from .store import Store  # noqa: F401
from .studyfile import Study, load_study_file, parse_study, point_key  # noqa: F401
