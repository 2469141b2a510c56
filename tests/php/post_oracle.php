<?php
// The PHP side of tests/php_differential_test.cpp, run by `php -S` (the cli-server SAPI), so
// that $_POST is filled by PHP's own POST handler (php_std_post_handler) from a real request
// body, exactly as a Bitrix24 application written in PHP would see it.
//
// Answers {"has":false} when the body set no `data`, else {"has":true,"data":...} with SPEC §4's
// two storage rules applied to PHP's value: every byte of a string that is not part of a
// well-formed UTF-8 sequence becomes U+FFFD, and the token-bearing keys are redacted. (Keys are
// made valid UTF-8 by the test before PHP sees them; see the test for why.)

// One well-formed sequence (Unicode Table 3-7) or else one byte, which is replaced.
const WELL_FORMED = '/([\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]'
    . '|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}'
    . '|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2})|./s';

const SECRET_KEYS = ['access_token', 'refresh_token', 'application_token', 'token', 'auth_id',
    'refresh_id', 'client_secret'];

function sanitize_utf8(string $s): string {
    return preg_replace_callback(WELL_FORMED, function ($m) {
        return isset($m[1]) && $m[1] !== '' ? $m[1] : "\u{FFFD}";
    }, $s);
}

function stored_form($value) {
    if (!is_array($value)) {
        return sanitize_utf8($value);
    }
    $out = [];
    foreach ($value as $key => $item) {
        $out[$key] = is_string($key) && in_array(strtolower($key), SECRET_KEYS, true)
            ? '[redacted]' : stored_form($item);
    }
    return $out;
}

header('Content-Type: application/json');
if (!array_key_exists('data', $_POST)) {
    echo '{"has":false}';
    return;
}
echo json_encode(['has' => true, 'data' => stored_form($_POST['data'])],
    JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
