"""Block declarations: each block's parameter model, without torch; every module here is imported by
`load_specs()`. The torch module of a block is the module of the same name in `nasearch.nn.blocks`."""
