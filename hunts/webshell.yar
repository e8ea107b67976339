rule webshell_exec_request_param
{
    meta:
        description = "Script that hands a request parameter to a shell or eval"
        severity = "high"
    strings:
        $php_sys = /(system|shell_exec|passthru|exec|popen)\s*\(\s*\$_(GET|POST|REQUEST)/ nocase
        $php_eval = /eval\s*\(\s*(base64_decode\s*\()?\s*\$_(GET|POST|REQUEST)/ nocase
        $jsp = "Runtime.getRuntime().exec(request.getParameter" ascii
    condition:
        filesize < 512KB and any of them
}
