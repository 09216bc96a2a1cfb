"""SyncTalk inference in plain PyTorch and its export to an avatar bundle (ONNX graphs + tracks).

Modules: `grid` (tri-plane hash grids), `encoders` (SH / frequency), `audio` (AVE + audio attention),
`model` (the NeRF MLPs from a checkpoint), `marcher` (rays, SyncTalk's marching loop and kernels, compositing),
`schedule` (that loop as static-shaped graph ops),
`checkpoint` (loading and validating official files), `dataset` (the data folder), `reference`
(one frame end to end), `graphs` (export-friendly modules), `export` (CLI), `make_test_workspace` (fixtures).
"""
