//! GET /connect/{provider} and GET /oauth/{provider}/callback.

use lambda_http::{run, service_fn, Body, Error, Request, Response};
use shared::aws::AwsClients;
use shared::{Config, RequestContext};

async fn handle(_clients: &AwsClients, _config: &Config, req: Request) -> Result<Response<Body>, Error> {
    let ctx = RequestContext::new(req.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()));
    ctx.scope(async {
        let err = shared::Error::NotImplemented("connect flow");
        tracing::warn!(code = err.code().as_u16(), path = req.uri().path(), "not implemented");
        Ok(Response::builder()
            .status(err.http_status())
            .header("content-type", "application/json")
            .body(Body::from(err.to_body().to_string()))?)
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    shared::telemetry::init(&config.log_level);
    let clients = AwsClients::from_env().await;
    run(service_fn(|req| handle(&clients, &config, req))).await
}
