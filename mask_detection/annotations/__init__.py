"""Reading annotated data: PASCAL VOC files (``voc``) and scene folders pairing them with their photos
(``scene_set``) for photos, MOT Challenge ground truth (``mot``) for videos.

Building blocks shared by the evaluation and by training-data preparation (``scene_crops``).
"""
