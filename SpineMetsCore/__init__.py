"""SpineMets core: the Qt-free layer every other SpineMets package builds on.

* :mod:`SpineMetsCore.runtime` - desktop Slicer's scene or a headless slicer-core one
* :mod:`SpineMetsCore.volumes` / :mod:`SpineMetsCore.segmentations` - the MRML bridge
* :mod:`SpineMetsCore.dataio` - NRRD / NIfTI / DICOM / .seg.nrrd through storage nodes
* :mod:`SpineMetsPhantom` - the synthetic multi-sequence spine MRI phantom
* :mod:`SpineMetsCore.cli` - the ``spinemets`` command

Nothing here imports Qt, so batch scripts and tests run without a GUI.
"""

__version__ = "0.1.0"
