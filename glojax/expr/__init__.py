"""Expression trees (GLO genomes, ``expr:`` loss specs) and their compilation."""

from glojax.expr.tree import (
    BINARY_OPS,
    UNARY_OPS,
    VARIABLES,
    Leaf,
    Node,
    Tree,
    compile_jnp,
    depth,
    evaluate,
    parse,
    size,
    to_string,
    variables,
)
from glojax.expr.program import Program, decode, encode, encode_population, program_loss, run_program
