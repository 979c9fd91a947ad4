//! The C file the gcc workload compiles: generated, so that it is large enough to give the
//! compiler real work, and deterministic, so that every allocator compiles the same text
//! and the compiled program prints the same checksum.

use std::fmt::Write;

/// Functions in the generated file; sized for about a second of `gcc -O2` here.
pub const FUNCTIONS: usize = 80;

/// A C program of `functions` functions of loops, switches and struct arithmetic, whose
/// main prints `checksum=` and a sum over all of them.
pub fn generate(functions: usize) -> String {
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as u32
    };
    let mut c = String::from(
        "#include <stdio.h>\n#include <string.h>\n\n\
         typedef struct { unsigned a[16]; unsigned long long s; } state_t;\n\n",
    );
    for i in 0..functions {
        let (k1, k2, k3, k4) = (next() % 97 + 1, next(), next() % 31 + 1, next() % 13 + 3);
        let _ = writeln!(c, "static unsigned f{i}(unsigned x)\n{{");
        c.push_str("    state_t st;\n    memset(&st, 0, sizeof st);\n");
        let _ = writeln!(
            c,
            "    for (unsigned i = 0; i < 16; i++)\n        st.a[i] = x * (i + {k1}u) ^ (x >> (i % 7));"
        );
        c.push_str("    switch (x % 8) {\n");
        for case in 0..8 {
            let (m, a) = (next() % 1000 + 1, next() % 16);
            let _ = writeln!(
                c,
                "    case {case}: st.a[{a}] += {m}u * st.a[{}]; st.s ^= st.a[{a}] << {}; break;",
                (a + 1) % 16,
                case % 5
            );
        }
        c.push_str("    }\n");
        let _ = writeln!(
            c,
            "    for (unsigned i = 1; i < 16; i++)\n        st.s += (unsigned long long)st.a[i] * st.a[i - 1] + {k2}u;"
        );
        let _ = writeln!(
            c,
            "    while (st.s > {k4}u && (st.s & 1)) st.s = (st.s >> 1) ^ {k3}u;"
        );
        if i % 10 == 0 {
            c.push_str("    return (unsigned)(st.s ^ (st.s >> 32));\n}\n\n");
        } else {
            let _ = writeln!(
                c,
                "    return (unsigned)(st.s ^ (st.s >> 32)) + f{}(x + {k3}u) % 17u;\n}}\n",
                i - 1
            );
        }
    }
    c.push_str("int main(void)\n{\n    unsigned long long sum = 0;\n");
    for i in 0..functions {
        let _ = writeln!(c, "    sum += f{i}({i}u);");
    }
    c.push_str("    printf(\"checksum=%016llx\\n\", sum);\n    return 0;\n}\n");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_count_gives_the_same_text() {
        assert_eq!(generate(20), generate(20));
    }

    #[test]
    fn every_function_is_defined_and_called_once() {
        let c = generate(25);
        for i in 0..25 {
            assert_eq!(c.matches(&format!("static unsigned f{i}(")).count(), 1);
            assert_eq!(c.matches(&format!("sum += f{i}(")).count(), 1);
        }
        assert!(c.contains("int main(void)"));
    }
}
