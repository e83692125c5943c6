//! A component that imports `acme:extra/telemetry`, which no Spool host
//! provides: its upload must be refused, naming the import.

wit_bindgen::generate!({
    inline: r#"
        package acme:extra;

        interface telemetry {
            send: func(event: string);
        }

        world extra {
            import telemetry;
            export run: func() -> u32;
        }
    "#,
});

struct Extra;

impl Guest for Extra {
    fn run() -> u32 {
        acme::extra::telemetry::send("started");
        1
    }
}

export!(Extra);
