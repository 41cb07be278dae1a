namespace LatentDiffusion.Pipeline.Schedulers;

/// <summary>
/// Every constructor argument of every diffusers scheduler class (diffusers 0.30.3 and later): a
/// scheduler_config.json may carry keys of another class (diffusers shares one config between all
/// compatible schedulers), and those are ignored. A key outside this list is a typo or a foreign file,
/// and loading fails naming it.
/// </summary>
internal static class KnownConfigKeys
{
    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal)
    {
        "algorithm_type", "alpha_cum_end", "alpha_cum_start", "base_image_seq_len", "base_shift", "beta_end",
        "beta_schedule", "beta_start", "block_length", "clip_denoised", "clip_sample", "clip_sample_range",
        "correct_steps", "corrector_k", "corrector_order", "corrector_selection", "corrector_selection_tau",
        "corrector_steps", "disable_corrector", "dynamic_thresholding_ratio", "editing_threshold", "entropy_bound",
        "eta", "euler_at_final", "final_sigmas_type", "flow_shift", "gamma", "gamma_cum_end", "gamma_cum_start",
        "interpolation_type", "invert_sigmas", "lambda_min_clipped", "lower_order_final", "mask_token_id",
        "masking_schedule", "max_image_seq_len", "max_shift", "minimal_topk", "noise_sampler_seed",
        "num_inference_steps", "num_train_timesteps", "num_vec_classes", "original_inference_steps", "predict_x0",
        "prediction_type", "predictor_order", "rescale_betas_zero_snr", "rho", "s", "s_noise", "sample_max_value",
        "sampling_eps", "scale_factors", "scaler", "scheduler_type", "set_alpha_to_one", "shift", "shift_terminal",
        "sigma_data", "sigma_max", "sigma_min", "sigma_schedule", "skip_prk_steps", "snr", "snr_shift_scale",
        "solver_order", "solver_p", "solver_type", "stage_range", "stages", "steps_offset", "stochastic_sampling",
        "t_max", "t_min", "tau_func", "threshold", "thresholding", "time_shift_type", "timestep_scaling",
        "timestep_spacing", "timestep_type", "trained_betas", "upscale_mode", "use_beta_sigmas",
        "use_dynamic_shifting", "use_exponential_sigmas", "use_flow_sigmas", "use_karras_sigmas", "use_lu_lambdas",
        "variance_type",
    };
}
