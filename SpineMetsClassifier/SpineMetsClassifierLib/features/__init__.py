"""Feature extraction: radiomics per sequence, expert-derived features, segmentation features.

Module map (one concept per file):

* :mod:`.resources` - where the shipped parameter files and the EDF schema live
* :mod:`.provenance` - hashes and geometry records that make every row reproducible
* :mod:`.masks` - label selection, peritumoural shells, connected components
* :mod:`.radiomics_features` - PyRadiomics on each sequence (naming convention here)
* :mod:`.edf` - the expert-derived-feature schema and cell-by-cell validation
* :mod:`.quantitative` - computed counterparts of EDF items (signal ratios, height loss)
* :mod:`.segmentation_features` - volume, burden, components, location of any segment
* :mod:`.case` - every feature of one case from SimpleITK images (files or MRML nodes)
* :mod:`.cohort` - a manifest to one table: worker processes, cache, per-case errors

Nothing is imported eagerly: worker processes import only what they use, and
``SpineMetsClassifierLib.features.edf`` works without PyRadiomics or MRML.
"""
