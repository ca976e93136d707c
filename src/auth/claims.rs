//! The principal the front door already established: API Gateway's JWT
//! authorizer claims (HTTP API), a REST API's Cognito or Lambda authorizer, the
//! IAM caller of a Function URL or of a REST route with `AWS_IAM`. These are
//! trusted because only API Gateway, the event source mapping and the Function
//! URL may invoke the function (docs/DESIGN.md, "Who is calling"; the caller
//! grant in policy/ restricts IAM callers to the URL).

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::Value;

use super::Principal;

/// What API Gateway or the Function URL already established, if anything.
pub(super) fn from_context(request: &Request) -> Option<Principal> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let authorizer = context.authorizer.as_ref()?;
            if let Some(jwt) = &authorizer.jwt {
                let subject = jwt.claims.get("sub")?;
                let issuer = jwt.claims.get("iss").cloned().unwrap_or_default();
                return Some(Principal::Jwt {
                    issuer,
                    subject: subject.clone(),
                });
            }
            let iam = authorizer.iam.as_ref()?;
            let caller = iam.user_arn.clone().or_else(|| iam.caller_id.clone())?;
            Some(Principal::Iam { caller })
        }
        RequestContext::ApiGatewayV1(context) => {
            let fields = &context.authorizer.fields;
            // A Cognito user pool authorizer: claims as strings.
            if let Some(claims) = fields.get("claims") {
                let text = |name| claims.get(name).and_then(Value::as_str).map(str::to_owned);
                if let Some(subject) = text("sub") {
                    return Some(Principal::Jwt {
                        issuer: text("iss").unwrap_or_default(),
                        subject,
                    });
                }
            }
            // A Lambda authorizer.
            if let Some(principal) = fields.get("principalId").and_then(Value::as_str) {
                return Some(Principal::Authorizer {
                    principal: principal.to_owned(),
                });
            }
            // An AWS_IAM route.
            let caller = context.identity.user_arn.clone()?;
            Some(Principal::Iam { caller })
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::auth::testing::StaticKeys;
    use crate::auth::Authenticator;
    use crate::config::AuthConfig;
    use serde_json::json;

    fn fixture(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture")
    }

    fn request_with(event: Value) -> Request {
        let request: lambda_http::request::LambdaRequest =
            serde_json::from_value(event).expect("event");
        lambda_http::Request::from(request)
    }

    #[tokio::test]
    async fn each_event_shape_yields_its_principal() {
        // HTTP API with the template's JWT authorizer.
        let mut v2 = fixture(include_str!("../../events/apigw-v2-post-accounts.json"));
        v2["requestContext"]["authorizer"] = json!({"jwt": {
            "claims": {"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", "sub": "7d5f-0001", "client_id": "app"},
            "scopes": ["chime-onboard/accounts.create"]}});
        // REST API with a Cognito user pool authorizer.
        let mut cognito = fixture(include_str!("../../events/apigw-v1-post-accounts.json"));
        cognito["requestContext"]["authorizer"] = json!({"claims": {
            "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", "sub": "7d5f-0002"}});
        // REST API with a Lambda authorizer (the fixture's own `principalId`).
        let lambda_authorizer = fixture(include_str!("../../events/apigw-v1-post-accounts.json"));
        // REST API with AWS_IAM.
        let mut rest_iam = fixture(include_str!("../../events/apigw-v1-post-accounts.json"));
        rest_iam["requestContext"]["authorizer"] = json!({});
        // Function URL with AWS_IAM.
        let mut url = fixture(include_str!("../../events/function-url-post-accounts.json"));
        url["requestContext"]["authorizer"] = json!({"iam": {
            "accessKey": "AKIA", "accountId": "123456789012", "callerId": "AIDA",
            "userArn": "arn:aws:iam::123456789012:user/onboarding-admin", "userId": "AIDA"}});
        let cases = [
            (
                v2,
                "jwt:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool#7d5f-0001",
            ),
            (
                cognito,
                "jwt:https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool#7d5f-0002",
            ),
            (lambda_authorizer, "authorizer:admin"),
            (rest_iam, "iam:theUserArn"),
            (url, "iam:arn:aws:iam::123456789012:user/onboarding-admin"),
            (
                fixture(include_str!("../../events/alb-post-accounts.json")),
                "anonymous",
            ),
            (
                fixture(include_str!("../../events/function-url-post-accounts.json")),
                "anonymous",
            ),
        ];
        let auth = Authenticator::with_key_source(&AuthConfig::default(), StaticKeys::empty());
        for (event, expected) in cases {
            let principal = auth.principal(&request_with(event)).await;
            assert_eq!(principal.map(|p| p.id()), Ok(expected.to_owned()));
        }
    }

    #[tokio::test]
    async fn front_door_claims_come_before_a_bearer_token() {
        // An authorizer's principal wins even when sign-in is required and the
        // request also carries a token the function could not verify.
        let mut v2 = fixture(include_str!("../../events/apigw-v2-post-accounts.json"));
        v2["requestContext"]["authorizer"] = json!({"jwt": {
            "claims": {"iss": "https://issuer.example", "sub": "front-door"}, "scopes": null}});
        v2["headers"]["authorization"] = json!("Bearer not.a.jwt");
        let keys = StaticKeys::failing();
        let auth = Authenticator::with_key_source(&crate::auth::tests::config(true), keys.clone());
        let principal = auth.principal(&request_with(v2)).await;
        assert_eq!(
            principal.map(|p| p.id()),
            Ok("jwt:https://issuer.example#front-door".to_owned())
        );
        assert_eq!(keys.fetches(), 0);
    }
}
