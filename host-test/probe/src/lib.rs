//! The probe guest (see `wit/probe.wit`): wasm32 only.

#![cfg(target_arch = "wasm32")]

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

wit_bindgen::generate!({ world: "probe", path: "wit" });

struct Probe;

export!(Probe);

impl Guest for Probe {
    fn fetch(url: String) -> Result<u16, String> {
        let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let request = OutgoingRequest::new(Fields::new());
        request.set_method(&Method::Get).map_err(|()| "method")?;
        let scheme = if scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request.set_scheme(Some(&scheme)).map_err(|()| "scheme")?;
        request
            .set_authority(Some(authority))
            .map_err(|()| "authority")?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| "path")?;
        let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
        loop {
            match future.get() {
                Some(Ok(Ok(response))) => return Ok(response.status()),
                Some(Ok(Err(e))) => return Err(format!("{e:?}")),
                Some(Err(())) => return Err("taken".into()),
                None => future.subscribe().block(),
            }
        }
    }

    fn spin() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn grow(megabytes: u32) -> u32 {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for _ in 0..megabytes {
            let mut chunk = Vec::new();
            if chunk.try_reserve_exact(1 << 20).is_err() {
                break;
            }
            chunk.resize(1 << 20, 1u8);
            kept.push(chunk);
        }
        std::hint::black_box(&kept);
        kept.len() as u32
    }
}
