"""Expression trees (GLO genomes, ``expr:`` loss specs) and their compilation.

Modules: ``tree`` (trees, parse/print, direct jnp compile), ``program`` (fixed-size
postfix programs and their stack-machine interpreter), ``canonical`` (sympy cache keys),
``coefficients`` (GLO's per-node coefficients), ``variation`` (GP operators).
"""

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
from glojax.expr.program import (
    Program,
    decode,
    encode,
    encode_population,
    program_loss,
    run_program,
)
