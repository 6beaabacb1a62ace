//! Hostile test guest `wrong-world`: a valid component that exports some other
//! world (`evil:thing/thing`, one `run` function) instead of `tollgate:policy`.
//! Loading it must fail with a message that names the file and says it does
//! not implement the policy world.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        inline: "package evil:thing; world thing { export run: func() -> string; }",
        world: "thing",
    });

    struct Thing;

    impl Guest for Thing {
        fn run() -> String {
            "not a policy".to_string()
        }
    }

    export!(Thing);
}
