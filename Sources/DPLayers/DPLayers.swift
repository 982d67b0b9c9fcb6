// DPLayers: placeholder, filled by its issue.
