"""Feature extractors: text (transformer hidden states), audio (librosa/openSMILE), vision (OpenCV faces)."""
