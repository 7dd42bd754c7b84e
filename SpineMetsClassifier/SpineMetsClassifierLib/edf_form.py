"""The EDF form of the Classifier module: schema item -> parameter-node field.

A file of its own, with no imports, so the module file can use it at load time in a fresh
Slicer (before pandas or scikit-learn are installed) and the Logic uses the same map.
"""

EDF_FORM_FIELDS: dict[str, str] = {
    "age": "edfAge",
    "sex": "edfSex",
    "region": "edfRegion",
    "level": "edfLevel",
    "n_involved_vertebrae": "edfInvolvedVertebrae",
    "t1_signal": "edfT1Signal",
    "t2_signal": "edfT2Signal",
    "stir_signal": "edfStirSignal",
    "t1ce_signal": "edfT1ceSignal",
    "fracture": "edfFracture",
    "posterior_element_involvement": "edfPosteriorElements",
    "soft_tissue_extension": "edfSoftTissueExtension",
    "extension_type": "edfExtensionType",
    "margin": "edfMargin",
    "pattern": "edfPattern",
    "homogeneity": "edfHomogeneity",
}
"""EDF item -> parameter-node field of the module's EDF form (numbers < 0 and '' mean not recorded)."""
