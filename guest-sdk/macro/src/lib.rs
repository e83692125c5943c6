//! The `#[job]` attribute of `spool-sdk`. Use it through `spool_sdk::job`.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, parse_macro_input};

/// Exports the function as the component's job. See `spool_sdk::job`.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return error(attr.span(), "#[job] takes no arguments");
    }
    match expand(&function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(function: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let signature = &function.sig;
    let name = &signature.ident;
    if let Some(asyncness) = &signature.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a job function cannot be async",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new(
            signature.generics.span(),
            "a job function cannot be generic",
        ));
    }
    if let ReturnType::Default = signature.output {
        return Err(syn::Error::new(
            signature.span(),
            "a job function returns Result<T, E> where T: Serialize and E: Into<spool_sdk::Error>",
        ));
    }
    if let Some(receiver) = signature.receiver() {
        return Err(syn::Error::new(
            receiver.span(),
            "a job function cannot take self",
        ));
    }

    let call = match signature.inputs.len() {
        1 => quote! { |_job, params| #name(params) },
        2 => {
            if let Some(FnArg::Typed(first)) = signature.inputs.first()
                && !matches!(*first.ty, syn::Type::Reference(_))
            {
                return Err(syn::Error::new(
                    first.ty.span(),
                    "the first argument of a two-argument job is `&spool_sdk::Job`",
                ));
            }
            quote! { |job, params| #name(job, params) }
        }
        _ => {
            return Err(syn::Error::new(
                signature.inputs.span(),
                "a job function takes `params` or `(job: &spool_sdk::Job, params)`",
            ));
        }
    };

    Ok(quote! {
        #function

        const _: () = {
            struct SpoolJob;

            impl ::spool_sdk::__private::Guest for SpoolJob {
                fn run(
                    info: ::spool_sdk::__private::JobInfo,
                    params: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::string::String,
                    ::spool_sdk::__private::JobError,
                > {
                    ::spool_sdk::__private::run(info, &params, #call)
                }
            }

            ::spool_sdk::wit::export!(SpoolJob with_types_in ::spool_sdk::wit);
        };
    })
}

fn error(span: proc_macro2::Span, message: &str) -> TokenStream {
    quote_spanned!(span => compile_error!(#message);).into()
}
